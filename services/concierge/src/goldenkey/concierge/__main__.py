"""`python -m goldenkey.concierge`: serve the concierge service."""

from goldenkey.concierge.app import Settings, build_app
from goldenkey.kit import serve


def main() -> None:
    settings = Settings()
    serve(build_app(settings), settings)


if __name__ == "__main__":
    main()

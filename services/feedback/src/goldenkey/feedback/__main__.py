"""`python -m goldenkey.feedback`: serve the feedback service."""

from goldenkey.feedback.app import Settings, build_app
from goldenkey.kit import serve


def main() -> None:
    settings = Settings()
    serve(build_app(settings), settings)


if __name__ == "__main__":
    main()

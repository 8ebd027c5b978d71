"""`python -m goldenkey.parking`: serve the parking service."""

from goldenkey.kit import serve
from goldenkey.parking.app import Settings, build_app


def main() -> None:
    settings = Settings()
    serve(build_app(settings), settings)


if __name__ == "__main__":
    main()

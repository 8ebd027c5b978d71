"""`python -m goldenkey.queue`: serve the queue service."""

from goldenkey.kit import serve
from goldenkey.queue.app import Settings, build_app


def main() -> None:
    settings = Settings()
    serve(build_app(settings), settings)


if __name__ == "__main__":
    main()

"""The web app: HTML page, JSON API and URL fetching."""

"""Allow `python -m eyescreen`."""

from eyescreen.cli import main

raise SystemExit(main())

"""``python -m depth_perception.synthetic``: contact sheet and frames/s of the domains."""

from depth_perception.synthetic.randomized import main

raise SystemExit(main())

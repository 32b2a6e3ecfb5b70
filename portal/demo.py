"""The embedded demo's account. Not a secret: it exists only in the embedded install."""

DEMO_USERNAME = "demo"
DEMO_PASSWORD = "canfar-demo"  # noqa: S105 (documented demo account, embedded install only)
DEMO_PROJECTS = ("demo-lensing", "demo-survey")

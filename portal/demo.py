"""The embedded demo's account. Not a secret: it exists only in the embedded install."""

DEMO_USERNAME = "demo"
DEMO_PASSWORD = "canfar-demo"
DEMO_PROJECTS = ("demo-lensing", "demo-survey")

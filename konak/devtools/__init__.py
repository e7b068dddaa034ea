"""Development and test tooling that ships with Konak: a local Mosquitto, the demo."""

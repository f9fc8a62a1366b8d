"""The int8 OpenVINO networks of the built-in models (release/int8.py makes them; int8.json says what they measured)."""

"""Test harness: a real ComfyUI host, in-process or as an HTTP server, with this pack and the
test-only node pack (tests/comfy_test_pack) installed into a throw-away base directory.

Also used by scripts/demo.py and bench/, which run the pack the same way the tests do.
"""

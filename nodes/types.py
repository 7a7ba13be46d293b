"""Socket types that are ours. Core sockets (MODEL, IMAGE, LATENT, NOISE, ...) come from io."""

from comfy_api.latest import io

from ..verifiers.protocol import SOCKET_TYPE

# An immutable, growing pool of candidates with their sampling setup, scores and potentials.
Candidates = io.Custom("EACPS_CANDIDATES")
# A loaded verifier: any object providing verifiers/protocol.py's protocol (this pack's loaders or
# another pack's loader declaring the output type "EACPS_VERIFIER").
Verifier = io.Custom(SOCKET_TYPE)

"""Socket types that are ours. Core sockets (MODEL, IMAGE, LATENT, NOISE, ...) come from io."""

from comfy_api.latest import io

# An immutable, growing pool of candidates with their sampling setup, scores and potentials.
Candidates = io.Custom("EACPS_CANDIDATES")
# A loaded verifier (eacps.verifiers.base.Verifier), output by the EACPS_Load*Verifier nodes.
Verifier = io.Custom("EACPS_VERIFIER")

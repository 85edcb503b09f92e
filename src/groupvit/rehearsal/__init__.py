"""A small end-to-end rehearsal of the paper path on loopback (the `rehearsal` preset): pair lists in the real
formats, images drawn on the fly and tiny evaluation-set archives, served from 127.0.0.1."""

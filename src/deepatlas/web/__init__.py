"""The web atlas: `deepatlas serve` (app.py, a local FastAPI server) and `deepatlas site build` (site.py).

api.py turns the catalogue, the verdict snapshot and the local store into the page's JSON,
layout.py places the genealogy, jobs.py runs labs from the page one at a time. The server never
imports torch: the lab registry is read by a child process (labspec.py), and labs run in children.
"""

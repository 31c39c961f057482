"""`mmface4d view`: a browser viewer of a release (and a submission), served locally or exported as a static folder.

- :mod:`benchmark.viewer.frames`: the compact binary vertex form the page decodes (quantised in the take's box);
- :mod:`benchmark.viewer.content`: what the page reads, by relative URL (take list, topology, per-take files);
- :mod:`benchmark.viewer.server`: the read-only local HTTP server;
- :mod:`benchmark.viewer.export`: the same files written as a static folder;
- ``static/``: the page (HTML, CSS, JavaScript) and three.js, vendored (MIT), so the page loads nothing from outside.

It lives in ``benchmark`` because it reads submissions and shows their metrics; the core never imports it.
"""

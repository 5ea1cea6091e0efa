"""One module per phase kind, each a short setup around `xtjax.fit.fit` or `xtjax.predict`."""

"""Analysis instruments: cross-lingual alignment retention (``xtjax align``: `align`), inference
cost per language (``xtjax bench``: `bench`) and generalised cross-lingual evaluation of XNLI and
PAWS-X (``xtjax crosslingual``: `crosslingual`). The measures (`alignment`, `fertility`,
`inference`) are pure; `runs` reads checkpoints, `plots` and `files` write the outputs."""

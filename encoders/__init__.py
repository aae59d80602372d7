"""Framework-specific encoders, installed as ``rfa_toolbox.encoders``; each imports its
framework lazily. The source folder is ``encoders/`` at the top of the repository, but the
package has one name only: ``import encoders`` from a checkout is refused, so that a handler
registered through one name can never be missed by code using the other."""

if __name__ != "rfa_toolbox.encoders":
    raise ImportError(
        f"the encoders are the package rfa_toolbox.encoders, not {__name__!r}: install the"
        " checkout (pip install -e .) and import rfa_toolbox.encoders"
    )

"""A small real sample shipped with skcxr: 16 Kermany chest X-rays, downscaled."""

from pathlib import Path

from sklearn.utils._param_validation import StrOptions, validate_params

from ._real import load_kermany

__all__ = ["load_sample_images"]

#: Folder of the shipped sample (``chest_xray/val/{NORMAL,PNEUMONIA}``).
SAMPLE_ROOT = Path(__file__).parent / "data" / "kermany-sample"


@validate_params(
    {"labels": [StrOptions({"three_class", "binary"})]},
    prefer_skip_nested_validation=True,
)
def load_sample_images(labels="three_class"):
    """Paths and labels of 16 real chest X-rays shipped with skcxr.

    The ``chest_xray/val`` split of the Kermany pediatric pneumonia data set
    (8 normal, 8 bacterial pneumonia), downscaled to 512 px on the longest
    side, in the data set's folder layout. License CC BY 4.0: Kermany D, Zhang
    K, Goldbaum M, Mendeley Data v2, 2018, doi:10.17632/rscbjbr9sj.2 (see the
    README.md next to the images); the data set of Kermany et al. 2018.

    Parameters
    ----------
    labels : {"three_class", "binary"}, default="three_class"
        ``"normal"``/``"bacteria"``/``"virus"`` from the file names, or the
        ``"NORMAL"``/``"PNEUMONIA"`` folder names.

    Returns
    -------
    paths : ndarray of shape (16,) of str
        JPEG files, to be read with :class:`skcxr.ImageLoader`.
    y : ndarray of shape (16,) of str

    Examples
    --------
    >>> from collections import Counter
    >>> from skcxr.datasets import load_sample_images
    >>> paths, y = load_sample_images()
    >>> sorted(Counter(y.tolist()).items())
    [('bacteria', 8), ('normal', 8)]
    >>> sorted(Counter(load_sample_images(labels="binary")[1].tolist()).items())
    [('NORMAL', 8), ('PNEUMONIA', 8)]
    """
    return load_kermany(SAMPLE_ROOT, labels=labels)

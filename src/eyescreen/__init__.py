"""eyescreen: research software that sorts colour fundus photographs into four classes.

Not a medical device. See README.md.
"""

__version__ = "0.1.0"

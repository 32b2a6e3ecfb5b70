"""Source catalogues: reading MegaCam images, extracting sources, writing and drawing catalogues.

Every module of the portal that uses astropy imports this package first (a test checks it): astropy
opens URLs it is given (a table "file name", a FITS path, IERS tables), so here it is told never to
reach the network. Readers get bytes; this is the second wall.
"""

import astropy.utils.data
import astropy.utils.iers

astropy.utils.data.conf.allow_internet = False
astropy.utils.iers.conf.auto_download = False

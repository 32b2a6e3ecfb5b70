"""Source catalogues: reading MegaCam images, extracting sources, writing and drawing catalogues.

astropy opens URLs it is given (a table "file name", a FITS path, IERS tables): config/settings.py
tells it never to reach the network the moment it is first imported, in every process of the portal.
Readers get bytes; that is the second wall.
"""

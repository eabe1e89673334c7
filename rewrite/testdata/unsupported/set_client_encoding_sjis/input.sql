-- A second byte of an SJIS character may be a backslash.
SET client_encoding = 'SJIS'

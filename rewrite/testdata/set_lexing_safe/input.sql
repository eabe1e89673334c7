SET standard_conforming_strings = on; SET client_encoding = 'UTF8'; RESET client_encoding; SET standard_conforming_strings TO DEFAULT

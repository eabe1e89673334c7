SET standard_conforming_strings TO ON; SET client_encoding TO "LATIN1"; RESET client_encoding; SET standard_conforming_strings TO DEFAULT

SET standard_conforming_strings TO ON; SET client_encoding TO "UTF8"; RESET client_encoding; SET standard_conforming_strings TO DEFAULT

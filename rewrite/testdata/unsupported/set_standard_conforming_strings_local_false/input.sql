SET LOCAL standard_conforming_strings TO 'false'

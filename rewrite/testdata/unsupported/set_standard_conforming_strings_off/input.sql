-- With backslash escapes in strings, PostgreSQL would end 'a\' later than the rewriter.
SET standard_conforming_strings = off

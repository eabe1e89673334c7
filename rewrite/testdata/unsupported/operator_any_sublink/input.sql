SELECT name FROM countries WHERE name <?> ANY (SELECT name FROM countries)

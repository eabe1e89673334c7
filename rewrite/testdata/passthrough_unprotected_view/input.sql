SELECT * FROM country_names

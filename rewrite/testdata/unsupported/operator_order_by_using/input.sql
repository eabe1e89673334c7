SELECT name FROM countries ORDER BY name USING <?>

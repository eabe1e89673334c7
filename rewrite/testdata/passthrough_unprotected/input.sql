SELECT * FROM countries /* untouched */ WHERE code = 'DE'

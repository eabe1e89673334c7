SELECT * FROM dblink('dbname=x', 'select * from accounts') AS t(id int)

SELECT * FROM "Orders" o, countries c; SET search_path = "Sales", public

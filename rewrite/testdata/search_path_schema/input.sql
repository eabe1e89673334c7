SELECT * FROM "Orders"

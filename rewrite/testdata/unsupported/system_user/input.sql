SELECT system_user FROM customers

SELECT * FROM customers c LEFT JOIN accounts a ON a.customer_id = c.id RIGHT JOIN transactions t ON t.account_id = a.id FULL JOIN countries k ON k.name = c.name CROSS JOIN countries s2

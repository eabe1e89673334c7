SELECT a.tableoid, a.id FROM accounts a JOIN countries k ON true

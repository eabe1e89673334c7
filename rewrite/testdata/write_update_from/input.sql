UPDATE accounts a SET balance = t.amount FROM transactions t WHERE t.account_id = a.id

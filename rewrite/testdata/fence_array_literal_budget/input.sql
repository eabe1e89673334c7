SELECT id FROM accounts WHERE customer_id <> ALL('{-1,-2,-3,-4,-5}') AND customer_id <> ALL('{-1,-2,-3,-4,-5}') AND customer_id <> ALL('{-1,-2,-3,-4,-5}') AND customer_id <> ALL('{-1,-2,-3,-4,-5}')

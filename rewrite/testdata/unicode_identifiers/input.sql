SELECT U&"Cust\006Fmer" FROM U&"\0053ales"."Orders"

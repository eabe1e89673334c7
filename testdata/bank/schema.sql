-- The bank demo world (SPEC §5): schema and deterministic seed data.
-- Users map to customers through the customer_id attribute of their User
-- entity in entities.json (alice → 1, carol → 2, erin..peggy → 3..12).

BEGIN;

CREATE TABLE customers (
    id         bigint PRIMARY KEY,
    name       text   NOT NULL,
    email      text   NOT NULL,
    ssn        text,
    phone      text,
    birth_date date
);

CREATE TABLE accounts (
    id          bigint        PRIMARY KEY,
    customer_id bigint        NOT NULL REFERENCES customers (id),
    iban        text          NOT NULL UNIQUE,
    balance     numeric(14,2) NOT NULL,
    opened_at   timestamptz   NOT NULL
);

CREATE TABLE transactions (
    id         bigint        PRIMARY KEY,
    account_id bigint        NOT NULL REFERENCES accounts (id),
    amount     numeric(14,2) NOT NULL,
    merchant   text          NOT NULL,
    category   text          NOT NULL,
    booked_at  timestamptz   NOT NULL
);
CREATE INDEX transactions_account_id ON transactions (account_id);

CREATE TABLE support_tickets (
    id          bigint PRIMARY KEY,
    customer_id bigint NOT NULL REFERENCES customers (id),
    assignee    text,
    subject     text   NOT NULL,
    body        text   NOT NULL,
    status      text   NOT NULL CHECK (status IN ('open', 'closed'))
);
CREATE INDEX support_tickets_assignee ON support_tickets (assignee, status);

INSERT INTO customers (id, name, email, ssn, phone, birth_date) VALUES
    (1, 'Alice Archer', 'alice@example.com', '123-45-6789', '+1-555-0101', '1985-03-14'),
    (2, 'Carol Chen', 'carol@example.org', '234-56-7890', '+1-555-0102', '1990-07-02'),
    (3, 'Erin Ellis', 'erin@example.net', '303-13-1021', '+1-555-0103', '1973-04-13'),
    (4, 'Frank Fischer', 'frank@example.net', '304-14-1028', '+1-555-0104', '1974-05-14'),
    (5, 'Grace Gomez', 'grace@example.net', '305-15-1035', '+1-555-0105', '1975-06-15'),
    (6, 'Heidi Hahn', 'heidi@example.net', '306-16-1042', '+1-555-0106', '1976-07-16'),
    (7, 'Ivan Ivanov', 'ivan@example.net', '307-17-1049', '+1-555-0107', '1977-08-17'),
    (8, 'Judy Jones', 'judy@example.net', '308-18-1056', '+1-555-0108', '1978-09-18'),
    (9, 'Mallory Moss', 'mallory@example.net', '309-19-1063', '+1-555-0109', '1979-01-19'),
    (10, 'Niaj Nair', 'niaj@example.net', '310-20-1070', '+1-555-0110', '1980-02-10'),
    (11, 'Olivia Ortiz', 'olivia@example.net', '311-21-1077', '+1-555-0111', '1981-03-11'),
    (12, 'Peggy Park', 'peggy@example.net', '312-22-1084', '+1-555-0112', '1982-04-12');

INSERT INTO accounts (id, customer_id, iban, balance, opened_at) VALUES
    (101, 1, 'DE89370400440532013000', 2450.75, '2019-05-01 09:00:00+00'),
    (102, 1, 'DE89370400440532013001', 18000.00, '2021-01-15 09:00:00+00'),
    (103, 2, 'FR1420041010050500013M02606', 920.10, '2020-11-30 09:00:00+00'),
    (104, 3, 'NL91ABNA0417164303', 1411.21, '2018-04-04 09:00:00+00'),
    (105, 4, 'NL91ABNA0417164304', 1548.28, '2018-05-05 09:00:00+00'),
    (106, 5, 'NL91ABNA0417164305', 1685.35, '2018-06-06 09:00:00+00'),
    (107, 6, 'NL91ABNA0417164306', 1822.42, '2018-07-07 09:00:00+00'),
    (108, 7, 'NL91ABNA0417164307', 1959.49, '2018-08-08 09:00:00+00'),
    (109, 8, 'NL91ABNA0417164308', 2096.56, '2018-09-01 09:00:00+00'),
    (110, 9, 'NL91ABNA0417164309', 2233.63, '2018-01-02 09:00:00+00'),
    (111, 10, 'NL91ABNA0417164310', 2370.70, '2018-02-03 09:00:00+00'),
    (112, 11, 'NL91ABNA0417164311', 2507.77, '2018-03-04 09:00:00+00'),
    (113, 12, 'NL91ABNA0417164312', 2644.84, '2018-04-05 09:00:00+00');

INSERT INTO transactions (id, account_id, amount, merchant, category, booked_at) VALUES
    (1, 101, -1336.19, 'Bistro 21', 'dining', '2024-02-02 10:01:00+00'),
    (2, 101, -1627.83, 'Tax Office', 'tax', '2024-03-03 10:02:00+00'),
    (3, 101, 207.09, 'Employer Inc', 'income', '2024-04-04 10:03:00+00'),
    (4, 101, -2204.12, 'FreshMart', 'groceries', '2024-05-05 10:04:00+00'),
    (5, 102, -1507.74, 'Tax Office', 'tax', '2024-06-06 10:05:00+00'),
    (6, 102, 247.64, 'Employer Inc', 'income', '2024-07-07 10:06:00+00'),
    (7, 102, -889.04, 'FreshMart', 'groceries', '2024-08-08 10:07:00+00'),
    (8, 102, -362.55, 'Landlord LLC', 'rent', '2024-09-09 10:08:00+00'),
    (9, 103, 1722.08, 'Employer Inc', 'income', '2024-10-10 10:09:00+00'),
    (10, 103, -995.11, 'FreshMart', 'groceries', '2024-11-11 10:10:00+00'),
    (11, 103, -2267.54, 'Landlord LLC', 'rent', '2024-12-12 10:11:00+00'),
    (12, 103, -252.72, 'AirTravel', 'travel', '2024-01-13 10:12:00+00'),
    (13, 104, -517.28, 'FreshMart', 'groceries', '2024-02-14 10:13:00+00'),
    (14, 104, -2593.80, 'Landlord LLC', 'rent', '2024-03-15 10:14:00+00'),
    (15, 104, -2397.07, 'AirTravel', 'travel', '2024-04-16 10:15:00+00'),
    (16, 104, -2373.74, 'Bistro 21', 'dining', '2024-05-17 10:16:00+00'),
    (17, 105, -1634.06, 'Landlord LLC', 'rent', '2024-06-18 10:17:00+00'),
    (18, 105, -915.05, 'AirTravel', 'travel', '2024-07-19 10:18:00+00'),
    (19, 105, -2290.17, 'Bistro 21', 'dining', '2024-08-20 10:19:00+00'),
    (20, 105, -1196.53, 'Tax Office', 'tax', '2024-09-21 10:20:00+00'),
    (21, 106, -600.69, 'AirTravel', 'travel', '2024-10-22 10:21:00+00'),
    (22, 106, -492.73, 'Bistro 21', 'dining', '2024-11-23 10:22:00+00'),
    (23, 106, -1273.71, 'Tax Office', 'tax', '2024-12-24 10:23:00+00'),
    (24, 106, 2803.23, 'Employer Inc', 'income', '2024-01-25 10:24:00+00'),
    (25, 107, -432.74, 'Bistro 21', 'dining', '2024-02-26 10:25:00+00'),
    (26, 107, -2349.81, 'Tax Office', 'tax', '2024-03-27 10:26:00+00'),
    (27, 107, 779.47, 'Employer Inc', 'income', '2024-04-01 10:27:00+00'),
    (28, 107, -409.70, 'FreshMart', 'groceries', '2024-05-02 10:28:00+00'),
    (29, 108, -2926.08, 'Tax Office', 'tax', '2024-06-03 10:29:00+00'),
    (30, 108, 2321.07, 'Employer Inc', 'income', '2024-07-04 10:30:00+00'),
    (31, 108, -2545.26, 'FreshMart', 'groceries', '2024-08-05 10:31:00+00'),
    (32, 108, -2043.87, 'Landlord LLC', 'rent', '2024-09-06 10:32:00+00'),
    (33, 109, 2187.54, 'Employer Inc', 'income', '2024-10-07 10:33:00+00'),
    (34, 109, -1296.59, 'FreshMart', 'groceries', '2024-11-08 10:34:00+00'),
    (35, 109, -2408.58, 'Landlord LLC', 'rent', '2024-12-09 10:35:00+00'),
    (36, 109, -1491.38, 'AirTravel', 'travel', '2024-01-10 10:36:00+00'),
    (37, 110, -1027.23, 'FreshMart', 'groceries', '2024-02-11 10:37:00+00'),
    (38, 110, -2873.99, 'Landlord LLC', 'rent', '2024-03-12 10:38:00+00'),
    (39, 110, -1009.10, 'AirTravel', 'travel', '2024-04-13 10:39:00+00'),
    (40, 110, -2362.38, 'Bistro 21', 'dining', '2024-05-14 10:40:00+00'),
    (41, 111, -2161.63, 'Landlord LLC', 'rent', '2024-06-15 10:41:00+00'),
    (42, 111, -1416.93, 'AirTravel', 'travel', '2024-07-16 10:42:00+00'),
    (43, 111, -1848.36, 'Bistro 21', 'dining', '2024-08-17 10:43:00+00'),
    (44, 111, -2504.09, 'Tax Office', 'tax', '2024-09-18 10:44:00+00'),
    (45, 112, -493.65, 'AirTravel', 'travel', '2024-10-19 10:45:00+00'),
    (46, 112, -1722.21, 'Bistro 21', 'dining', '2024-11-20 10:46:00+00'),
    (47, 112, -1411.19, 'Tax Office', 'tax', '2024-12-21 10:47:00+00'),
    (48, 112, 2012.53, 'Employer Inc', 'income', '2024-01-22 10:48:00+00'),
    (49, 113, -170.85, 'Bistro 21', 'dining', '2024-02-23 10:49:00+00'),
    (50, 113, -327.97, 'Tax Office', 'tax', '2024-03-24 10:50:00+00'),
    (51, 113, 2295.73, 'Employer Inc', 'income', '2024-04-25 10:51:00+00'),
    (52, 113, -1295.43, 'FreshMart', 'groceries', '2024-05-26 10:52:00+00');

INSERT INTO support_tickets (id, customer_id, assignee, subject, body, status) VALUES
    (1, 2, 'sam', 'Card blocked', 'My card was blocked abroad.', 'open'),
    (2, 4, 'sam', 'Address change', 'Please update my address.', 'open'),
    (3, 1, 'sam', 'Statement copy', 'I need a copy of my March statement.', 'closed'),
    (4, 3, 'tess', 'Login issue', 'I cannot log in.', 'open'),
    (5, 5, 'sam', 'Fee question', 'Why was I charged a fee?', 'closed'),
    (6, 1, NULL, 'Savings rate', 'What is the current savings rate?', 'open');

COMMIT;

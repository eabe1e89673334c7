SELECT count(*) FROM transactions x WHERE x.id = 1 AND (CASE WHEN x.merchant >= ANY('{"Bistro 21 "}') THEN 'x'::char(10485760) END)::text IS NOT NULL

package deps

import (
	_ "github.com/MicahParks/keyfunc/v3"
	_ "github.com/cedar-policy/cedar-go"
	_ "github.com/cedar-policy/cedar-go/x/exp/eval"
	_ "github.com/golang-jwt/jwt/v5"
	_ "github.com/jackc/pgx/v5"
	_ "github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/pgproto3"
	_ "github.com/pganalyze/pg_query_go/v6"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/xdg-go/scram"
	_ "go.uber.org/goleak"
	_ "go.yaml.in/yaml/v4"
)

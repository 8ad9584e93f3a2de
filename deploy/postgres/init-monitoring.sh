#!/bin/sh
# The monitoring store's own role and database on the stack's PostgreSQL: role `shipyard` (login, no
# other rights) owning database `shipyard`, password MONITORING_DB_PASSWORD. MLflow keeps its database
# (POSTGRES_DB) and role (POSTGRES_USER) to itself: the `shipyard` role may not connect to it.
#
# The postgres image runs this from /docker-entrypoint-initdb.d/ on its first start (an empty data
# volume). It is idempotent, so it may also be run by hand on a volume made before it existed, or to set
# a new password:
#   docker compose exec -u postgres postgres /docker-entrypoint-initdb.d/init-monitoring.sh
# The password reaches psql as a variable and is quoted by psql (:'password'), never pasted into SQL.
set -eu

: "${MONITORING_DB_PASSWORD:?set MONITORING_DB_PASSWORD in .env (see .env.example)}"
: "${POSTGRES_USER:=postgres}"
: "${POSTGRES_DB:=$POSTGRES_USER}"

psql -v ON_ERROR_STOP=1 --no-psqlrc --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -v role=shipyard -v db=shipyard -v password="$MONITORING_DB_PASSWORD" -v mlflow_db="$POSTGRES_DB" <<'SQL'
SELECT format('CREATE ROLE %I LOGIN', :'role')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'role') \gexec
ALTER ROLE :"role" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'password';
SELECT format('CREATE DATABASE %I OWNER %I', :'db', :'role')
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db') \gexec
REVOKE ALL ON DATABASE :"db" FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE :"db" TO :"role";
REVOKE CONNECT ON DATABASE :"mlflow_db" FROM PUBLIC;
SQL
echo "init-monitoring.sh: role shipyard and database shipyard are ready"

\restrict abcDEF123
SET default_transaction_read_only = off;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
CREATE ROLE mastodon;
ALTER ROLE mastodon WITH NOSUPERUSER INHERIT NOCREATEROLE NOCREATEDB LOGIN NOREPLICATION NOBYPASSRLS;
CREATE ROLE "Ro ""x""";
GRANT pg_read_all_data TO "Ro ""x""" WITH ADMIN OPTION, INHERIT TRUE, SET FALSE GRANTED BY postgres;
GRANT "Ro ""x""" TO mastodon WITH INHERIT FALSE GRANTED BY postgres;
GRANT SET ON PARAMETER work_mem TO mastodon;
\unrestrict abcDEF123
-- permafrost: database-level settings (applied by permafrost after CREATE DATABASE)
GRANT ALL ON DATABASE mastodon_production TO "Ro ""x""" WITH GRANT OPTION;

--
-- PostgreSQL database cluster dump
--

\restrict JQ18iOC8c361FBLcsjcuNUL5vRCWXr1GefoQ9nb3tGTj8ioEIMkuUSDJuchlEOL

SET default_transaction_read_only = off;

SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;

--
-- Roles
--

CREATE ROLE "We""ird";
ALTER ROLE "We""ird" WITH NOSUPERUSER INHERIT NOCREATEROLE NOCREATEDB NOLOGIN NOREPLICATION NOBYPASSRLS;
CREATE ROLE exp;
ALTER ROLE exp WITH NOSUPERUSER INHERIT NOCREATEROLE NOCREATEDB NOLOGIN NOREPLICATION NOBYPASSRLS CONNECTION LIMIT 3 VALID UNTIL '2030-01-01 00:00:00+00';
CREATE ROLE mastodon;
ALTER ROLE mastodon WITH NOSUPERUSER INHERIT NOCREATEROLE NOCREATEDB LOGIN NOREPLICATION NOBYPASSRLS PASSWORD 'SCRAM-SHA-256$4096:Dif19bpxO/shg6UgywIbmA==$2OgoUjAPi152AP/YCezvc4s5TjIwanCH7EFqX6bOXRw=:xPD6n0wLExOofQOLa3YoP//MDNzmd25Q5kKe1bQsUR4=';
CREATE ROLE postgres;
ALTER ROLE postgres WITH SUPERUSER INHERIT CREATEROLE CREATEDB LOGIN REPLICATION BYPASSRLS PASSWORD 'SCRAM-SHA-256$4096:AKhSyXm1v6uMZRYC4uEsug==$YaZwXLT/qaENKpwlJ+G5X6ullmnHHFaaKBCTJwNxWLc=:RltfV9IdXmXLWvDYvQYDPhblBcxXQA4s/qbQXWvDZ34=';
CREATE ROLE ro;
ALTER ROLE ro WITH NOSUPERUSER INHERIT NOCREATEROLE NOCREATEDB NOLOGIN NOREPLICATION NOBYPASSRLS;
COMMENT ON ROLE ro IS E'it''s read-only\\x';

--
-- User Configurations
--

--
-- User Config "ro"
--

ALTER ROLE ro SET search_path TO 'public', '$user';
ALTER ROLE ro SET statement_timeout TO '5s';


--
-- Role memberships
--

GRANT pg_read_all_data TO ro WITH ADMIN OPTION GRANTED BY postgres;
GRANT ro TO mastodon GRANTED BY postgres;


--
-- Role privileges on configuration parameters
--

GRANT SET ON PARAMETER work_mem TO ro;




\unrestrict JQ18iOC8c361FBLcsjcuNUL5vRCWXr1GefoQ9nb3tGTj8ioEIMkuUSDJuchlEOL

--
-- PostgreSQL database cluster dump complete
--


-- permafrost: database-level settings (applied by permafrost after CREATE DATABASE)
COMMENT ON DATABASE mastodon_production IS 'hi';
ALTER DATABASE mastodon_production CONNECTION LIMIT = 50;
ALTER DATABASE mastodon_production SET work_mem TO '8MB';
ALTER ROLE ro IN DATABASE mastodon_production SET work_mem TO '16MB';
REVOKE CONNECT,TEMPORARY ON DATABASE mastodon_production FROM PUBLIC;
GRANT CONNECT ON DATABASE mastodon_production TO ro;

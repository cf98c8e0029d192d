CREATE ROLE a;
ALTER ROLE a WITH
\! touch /tmp/pwned
LOGIN;

COMMENT ON ROLE b IS $q$ it's \! $$ id ; $q$;
COMMENT ON ROLE c IS E'x\\y''z';
/* a /* b */ c */ -- d
COMMENT ON ROLE "d;\!" IS NULL;

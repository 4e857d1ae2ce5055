{#-
  The few places where DuckDB (the embedded warehouse, target dev) and Snowflake (target prod)
  spell a function differently. Each is one macro that dispatches on the adapter
  (adapter.dispatch: duckdb__ first on DuckDB, snowflake__ or default__ on Snowflake), so that
  no model is written twice. dbt's own cross-database macros (dbt.safe_cast, dbt.split_part,
  dbt.dateadd, dbt.date_spine, ...) cover the rest.
-#}

{#- The `group`-th capture group of the first match of `pattern` in `text`, NULL when none
    matches (DuckDB's regexp_extract returns '' there, Snowflake's REGEXP_SUBSTR NULL). -#}
{% macro regex_group(text, pattern, group) -%}
  {{ return(adapter.dispatch('regex_group')(text, pattern, group)) }}
{%- endmacro %}

{% macro default__regex_group(text, pattern, group) -%}
  nullif(regexp_substr({{ text }}, '{{ pattern }}', 1, 1, 'e', {{ group }}), '')
{%- endmacro %}

{% macro duckdb__regex_group(text, pattern, group) -%}
  nullif(regexp_extract({{ text }}, '{{ pattern }}', {{ group }}), '')
{%- endmacro %}

{#- The value of parameter `name` in a URL query string (`a=1&b=2`), undecoded; NULL when the
    parameter is missing or empty. -#}
{% macro query_param(query, name) -%}
  {{ regex_group(query, '(^|&)' ~ name ~ '=([^&]*)', 2) }}
{%- endmacro %}

{#- Percent-decoding of a URL-encoded text (CloudFront writes user agents so: `%20` for a
    space). DuckDB has url_decode. Snowflake has no such function: the escapes CloudFront's
    user agents carry are replaced, `%25` last so that a decoded `%` is not read again. -#}
{% macro url_decode(text) -%}
  {{ return(adapter.dispatch('url_decode')(text)) }}
{%- endmacro %}

{% macro duckdb__url_decode(text) -%}
  url_decode({{ text }})
{%- endmacro %}

{% macro default__url_decode(text) -%}
  {%- set escapes = [('%20', ' '), ('%22', '"'), ('%28', '('), ('%29', ')'), ('%2C', ','),
                     ('%2F', '/'), ('%3A', ':'), ('%3B', ';'), ('%3D', '='), ('%5B', '['),
                     ('%5D', ']'), ('%25', '%')] -%}
  {%- set ns = namespace(sql=text) -%}
  {%- for escape, plain in escapes -%}
    {%- set ns.sql = "replace(" ~ ns.sql ~ ", '" ~ escape ~ "', '" ~ plain ~ "')" -%}
  {%- endfor -%}
  {{ ns.sql }}
{%- endmacro %}

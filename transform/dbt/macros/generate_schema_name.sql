{#- Models go to the schema their folder names (staging, marts), as is, on both targets: in the
    embedded warehouse beside the raw schemas, on Snowflake in the transform database. dbt's
    default would prefix the target's schema (main_marts); the target's schema
    (SNOWFLAKE_TRANSFORM_SCHEMA) holds what names no schema of its own. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {{ (custom_schema_name or target.schema) | trim }}
{%- endmacro %}

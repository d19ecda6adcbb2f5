with

events as (

    select * from {{ source('raw', 'events') }}

),

final as (

    select
        events.user_id,
        events.ts,
        cast(events.ts as date) as event_date,
        lower(trim(events.event_name)) as event_name,
        events.metadata_json
    from events

)

select * from final

"""
### Review retweets

A person decides which AI tweets the company's account retweets (review mode,
`X_RETWEET_REVIEW`; the default in live mode). The classify stream records the tweets the
classifier and the retweet policy accept as `awaiting_review` in `retweets`. Every hour,
`request` shows up to 20 of them, most probable first, in Airflow's **Required Actions** page:
each with its text, probability, author and links. The reviewer ticks the ones to retweet.
`settle` then retweets the approved ones within the rate budget (each re-read from X first; a
dry run records `would_retweet`) and records the others `rejected`, by whom. With no answer
within `X_RETWEET_REVIEW_MINUTES` (or the run's `response_minutes`), they expire unretweeted.
Every decision is a row of `retweets`, shown on the dashboard.
Logic: `ai_tweets.review`, `ai_tweets.retweet`.
"""

from airflow.providers.standard.operators.hitl import HITLOperator
from airflow.sdk import Param, dag

from ai_tweets.dag_support import every, pipeline_dag, stage_task
from ai_tweets.review import review_request, settle_answers


@dag(
    schedule=every("0 * * * *"),
    **pipeline_dag(
        __doc__,
        tags=["retweet", "review"],
        render_template_as_native_obj=True,
        params={"response_minutes": Param(0, type="integer", minimum=0,
                                          description="how long the review waits for an answer, in minutes "
                                                      "(0: X_RETWEET_REVIEW_MINUTES)")},
    ),
)
def review_retweets():
    request = stage_task(review_request, task_id="request")(response_minutes="{{ params.response_minutes }}")
    # One request per run, none when nothing waits. The defaults (no option) are the answer when
    # the response timeout passes. A retry asks again: settling only touches rows still awaiting.
    answer = HITLOperator.partial(task_id="review", multiple=True, defaults=[]).expand_kwargs(request)
    stage_task(settle_answers, task_id="settle")(request, answer.output)


review_retweets()

"""XGBoost, LightGBM and CatBoost estimator and booster classes (their state is the
library's own model format, parsed by the library, not Python code).
"""

GLOBALS: frozenset[str] = frozenset(
    {
        "catboost.core:CatBoost",
        "catboost.core:CatBoostClassifier",
        "catboost.core:CatBoostRanker",
        "catboost.core:CatBoostRegressor",
        "lightgbm.basic:Booster",
        "lightgbm.sklearn:LGBMClassifier",
        "lightgbm.sklearn:LGBMModel",
        "lightgbm.sklearn:LGBMRanker",
        "lightgbm.sklearn:LGBMRegressor",
        "sklearn.preprocessing._label:LabelEncoder",
        "xgboost.core:Booster",
        "xgboost.sklearn:XGBClassifier",
        "xgboost.sklearn:XGBModel",
        "xgboost.sklearn:XGBRFClassifier",
        "xgboost.sklearn:XGBRFRegressor",
        "xgboost.sklearn:XGBRanker",
        "xgboost.sklearn:XGBRegressor",
    }
)

from __future__ import annotations

import numpy as np

from orchestration.catalogue.quality import mag_at_completeness, match_nearest


def test_it_matches_each_point_to_its_nearest_neighbour_within_the_radius() -> None:
    x1, y1 = np.array([10.0, 50.0, 90.0]), np.array([10.0, 50.0, 90.0])
    x2, y2 = np.array([90.5, 10.2, 70.0, 10.0]), np.array([90.0, 10.0, 70.0, 11.5])
    idx, dist = match_nearest(x1, y1, x2, y2, radius=1.0)
    assert idx.tolist() == [1, -1, 0]
    assert dist[0] == 0.2 or np.isclose(dist[0], 0.2)


def test_it_interpolates_the_50_percent_completeness_magnitude() -> None:
    bins = np.array([-10.0, -9.0, -8.0, -7.0])
    assert np.isclose(mag_at_completeness(bins, np.array([1.0, 0.6, 0.2])), -8.25)
    assert np.isnan(mag_at_completeness(bins, np.array([1.0, 1.0, 1.0])))

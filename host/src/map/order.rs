//! Dependency order of maps: a stable topological sort that names a cycle.

use std::collections::BTreeMap;

/// Orders `names` so that every map comes after the maps it depends on,
/// keeping the declaration order where dependencies allow. `depends_on`
/// maps an index to the indices it depends on (unknown names are already
/// dropped). On a cycle, returns its members, the first repeated at the end.
pub(crate) fn dependency_order(
    names: &[&str],
    depends_on: &BTreeMap<usize, Vec<usize>>,
) -> Result<Vec<usize>, Vec<String>> {
    let mut placed = vec![false; names.len()];
    let mut order = Vec::with_capacity(names.len());
    while order.len() < names.len() {
        let ready = (0..names.len()).find(|&index| {
            !placed[index]
                && depends_on
                    .get(&index)
                    .is_none_or(|deps| deps.iter().all(|&dep| placed[dep]))
        });
        match ready {
            Some(index) => {
                placed[index] = true;
                order.push(index);
            }
            None => return Err(find_cycle(names, depends_on, &placed)),
        }
    }
    Ok(order)
}

/// Walks unplaced dependencies from an unplaced map until one repeats.
fn find_cycle(
    names: &[&str],
    depends_on: &BTreeMap<usize, Vec<usize>>,
    placed: &[bool],
) -> Vec<String> {
    let mut path: Vec<usize> = Vec::new();
    let mut current = placed.iter().position(|done| !done);
    while let Some(index) = current {
        if let Some(start) = path.iter().position(|&seen| seen == index) {
            let mut cycle: Vec<String> = path[start..]
                .iter()
                .map(|&i| names[i].to_string())
                .collect();
            cycle.push(names[index].to_string());
            return cycle;
        }
        path.push(index);
        current = depends_on
            .get(&index)
            .and_then(|deps| deps.iter().copied().find(|&dep| !placed[dep]));
    }
    path.iter().map(|&i| names[i].to_string()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(edges: &[(usize, usize)], expected: Result<Vec<usize>, Vec<&str>>) {
        let names = ["a", "b", "c", "d"];
        let mut depends_on: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for &(from, to) in edges {
            depends_on.entry(from).or_default().push(to);
        }
        let got = dependency_order(&names, &depends_on);
        let expected = expected.map_err(|cycle| cycle.iter().map(|s| s.to_string()).collect());
        assert_eq!(got, expected, "edges {edges:?}");
    }

    #[test]
    fn orders_dependencies_first_and_keeps_declaration_order() {
        check(&[], Ok(vec![0, 1, 2, 3]));
        check(&[(0, 3)], Ok(vec![1, 2, 3, 0]));
        check(&[(0, 1), (1, 2), (2, 3)], Ok(vec![3, 2, 1, 0]));
        check(&[(2, 0), (2, 1)], Ok(vec![0, 1, 2, 3]));
    }

    #[test]
    fn names_the_cycle() {
        check(&[(0, 1), (1, 0)], Err(vec!["a", "b", "a"]));
        check(&[(0, 1), (1, 2), (2, 1)], Err(vec!["b", "c", "b"]));
        check(&[(3, 3)], Err(vec!["d", "d"]));
    }
}

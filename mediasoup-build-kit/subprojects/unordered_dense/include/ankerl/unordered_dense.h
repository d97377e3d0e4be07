// The names of ankerl::unordered_dense (https://github.com/martinus/unordered_dense, v5.3.2)
// that the mediasoup worker uses, mapped onto std::unordered_map / std::unordered_set.
//
// The original is a flat, open-addressing table; the standard node-based tables behave the
// same for the worker (it relies on no iteration order and keeps no iterators across
// inserts) but are slower and use more memory. This is a known cost of the offline build.
#ifndef MEDIASOUP_BUILD_KIT_ANKERL_UNORDERED_DENSE_H
#define MEDIASOUP_BUILD_KIT_ANKERL_UNORDERED_DENSE_H

#include <cstddef>
#include <functional>
#include <memory>
#include <unordered_map>
#include <unordered_set>
#include <utility>

namespace ankerl::unordered_dense
{
	// A hash functor like the original's (callable as hash<T>{}(value)). The `Enable`
	// parameter mirrors the original's so that specializations written for it still fit.
	template<class T, class Enable = void>
	struct hash : std::hash<T>
	{
	};

	template<
	  class Key,
	  class T,
	  class Hash      = hash<Key>,
	  class KeyEqual  = std::equal_to<Key>,
	  class Allocator = std::allocator<std::pair<const Key, T>>>
	using map = std::unordered_map<Key, T, Hash, KeyEqual, Allocator>;

	template<class Key, class Hash = hash<Key>, class KeyEqual = std::equal_to<Key>, class Allocator = std::allocator<Key>>
	using set = std::unordered_set<Key, Hash, KeyEqual, Allocator>;
} // namespace ankerl::unordered_dense

#endif
